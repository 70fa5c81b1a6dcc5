// A one-off tool of the workspace: built into /app/bin/migrate beside the web binary.
package main

import "fmt"

func main() {
	fmt.Println("migrate: nothing to do")
}
