package config

import (
	"fmt"
	"os"
)

// Load reads and parses the file at path. Every FieldError it returns, the
// Config and each User.Src carry path as their File.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		for _, e := range unwrap(err) {
			if fe, ok := e.(*FieldError); ok {
				fe.File = path
			}
		}
		return nil, err
	}
	c.File = path
	for i := range c.Users {
		c.Users[i].Src.File = path
	}
	return c, nil
}
