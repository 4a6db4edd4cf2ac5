package eval

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// readManifests reads a YAML or JSON file, or every .yaml, .yml and .json
// file below a folder (in name order), and returns the documents.
func readManifests(path string) ([]any, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return decodeManifests(f, path)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s holds no .yaml, .yml or .json files", path)
	}
	var docs []any
	for _, f := range files {
		d, err := readManifests(f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

// document is a value read from a manifest file, with where it was, so an
// error about it names the file and the document.
type document struct {
	file  string
	n     int // 1-based, as "document N" in YAML errors
	value any
}

// decodeManifests reads a stream of YAML documents or JSON values. YAML
// documents are split apart first and then parsed in parallel: parsing is
// most of the time an apply of a large manifest file spends before it
// talks to the cluster.
func decodeManifests(r io.Reader, name string) ([]any, error) {
	r, _, isJSON := utilyaml.GuessJSONStream(r, 4096)
	if isJSON {
		return decodeJSON(r, name)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var raw [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", name, len(raw)+1, err)
		}
		raw = append(raw, doc)
	}
	values := make([]any, len(raw))
	errs := make([]error, len(raw))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(raw); i += workers {
				errs[i] = yaml.Unmarshal(raw[i], &values[i])
			}
		})
	}
	wg.Wait()
	var docs []any
	for i, v := range values {
		if errs[i] != nil {
			return nil, fmt.Errorf("%s, document %d: %w", name, i+1, errs[i])
		}
		if v != nil {
			docs = append(docs, document{file: name, n: i + 1, value: v})
		}
	}
	return docs, nil
}

// decodeJSON reads a stream of JSON values.
func decodeJSON(r io.Reader, name string) ([]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var docs []any
	for i := 1; ; i++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", name, i, err)
		}
		if doc != nil {
			docs = append(docs, document{file: name, n: i, value: doc})
		}
	}
}
