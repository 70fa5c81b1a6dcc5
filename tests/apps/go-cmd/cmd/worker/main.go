// cmd/worker: built into /app/bin/worker, run by the Procfile's worker line.
package main

import (
	"log"
	"time"
)

func main() {
	log.Println("worker from go-cmd started")
	for {
		time.Sleep(time.Minute)
	}
}
