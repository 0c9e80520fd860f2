package main

import "github.com/berthproject/berth/internal/cli"

// imageCommands are the image verbs: pull, push, images, tag, rmi, ...
func imageCommands(g *globals) []*cli.Command {
	return nil
}
