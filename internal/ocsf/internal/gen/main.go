// Command gen writes internal/ocsf/schema_gen.go from an OCSF schema
// repository checkout:
//
//	go run ./internal/gen -schema /path/to/ocsf-schema -out schema_gen.go
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/auditexport/auditexport/internal/ocsf/internal/schemagen"
)

func main() {
	dir := flag.String("schema", os.Getenv("OCSF_SCHEMA_DIR"), "the OCSF schema repository (default $OCSF_SCHEMA_DIR)")
	out := flag.String("out", "schema_gen.go", "the Go file to write")
	classes := flag.String("classes", strings.Join(schemagen.DefaultClasses, ","), "comma-separated class names")
	objects := flag.String("objects", strings.Join(schemagen.DefaultObjects, ","), "comma-separated object names")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gen: -schema (or OCSF_SCHEMA_DIR) names the OCSF schema repository")
		os.Exit(2)
	}
	src, err := schemagen.Generate(schemagen.Options{
		Dir:     *dir,
		Classes: strings.Split(*classes, ","),
		Objects: strings.Split(*objects, ","),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
