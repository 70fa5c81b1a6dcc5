// Package greet is the workspace's library module: the api module imports it without a require line.
package greet

// Hello is the sample app's answer.
func Hello() string {
	return "hello from go-workspace\n"
}
