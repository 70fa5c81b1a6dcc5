// Sample app: the web module of a Go workspace; its text comes from the workspace's lib module.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"example.com/lib/greet"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, greet.Hello())
	})
	log.Printf("listening on %s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
