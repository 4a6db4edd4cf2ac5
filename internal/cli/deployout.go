package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kix-project/kix/internal/deploy"
)

// writeChangeSet prints a change set as kubectl prints objects: a table,
// or the documented JSON/YAML form.
func writeChangeSet(w io.Writer, format outputFormat, cs *deploy.ChangeSet) error {
	if format != outputText {
		return writeStructured(w, format, cs)
	}
	if len(cs.Changes) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tRESULT\tSTATUS")
	for _, c := range cs.Changes {
		result := string(c.Action)
		if c.DryRun {
			result += " (server dry run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Object.Kind, c.Object.Namespace, c.Object.Name, result, oneLine(c.Message))
	}
	return tw.Flush()
}

// summary is the one line after a table: the inventory, then counts by
// action.
func summary(cs *deploy.ChangeSet) string {
	if cs.Inventory == "" {
		return cs.Summary()
	}
	return "inventory " + cs.Inventory + ": " + cs.Summary()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// progressPrinter writes progress messages to a stream: each new message
// once, and a repeated one (waiting...) at most every few seconds, so a CI
// log stays readable.
type progressPrinter struct {
	w    io.Writer
	mu   sync.Mutex
	last string
	at   time.Time
}

func (p *progressPrinter) print(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	same := strings.SplitN(msg, ":", 2)[0] == strings.SplitN(p.last, ":", 2)[0]
	if same && time.Since(p.at) < 5*time.Second {
		return
	}
	p.last, p.at = msg, time.Now()
	fmt.Fprintln(p.w, msg)
}
