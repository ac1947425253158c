//go:build unix

package mitoken

import (
	"os"
	"syscall"
)

// openKeyFile opens an Arc key file without following a symbolic link at
// its last element, and without blocking should it have become a FIFO.
func openKeyFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
