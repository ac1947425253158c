//go:build !unix

package mitoken

import "os"

// openKeyFile opens an Arc key file. Without O_NOFOLLOW here, readKey's
// os.SameFile comparison of the Lstat before and the handle after opening is
// what catches a file swapped for a link in between.
func openKeyFile(path string) (*os.File, error) {
	return os.Open(path)
}
