module github.com/tandemproxy/tandem

go 1.26

require go.yaml.in/yaml/v3 v3.0.4

require (
	github.com/coder/websocket v1.8.14 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)
