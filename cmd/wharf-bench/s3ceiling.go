package main

import (
	"fmt"
	"runtime"
	"strings"
)

// The s3 rows run the client, the gateway and the store on the same cores.
// Where those are few, wharf's rate is bounded by the CPU the three spend
// together per GB, whatever the gateway's share: each transfer's summary
// prints that sum, the rate it allows with every core busy, and that rate
// over each reference's measured one, the most wharf/reference can be on
// this machine (docs/performance.md, "Why the three that are not met
// cannot be met").

// cpuCost is what wharf's path costs per GB, in CPU-seconds: the sftp
// client's, the gateway's and the store's.
type cpuCost struct {
	client, gateway, store float64
}

func (c cpuCost) total() float64 { return c.client + c.gateway + c.store }

// maxRate is the rate, in MB/s, that ncpu cores all busy give this path.
func (c cpuCost) maxRate(ncpu int) float64 {
	if c.total() <= 0 {
		return 0
	}
	return float64(ncpu) / c.total() * 1e3
}

// measured is a reference's median rate, in MB/s.
type measured struct {
	name string
	rate float64
}

// ceilingLine says, for one direction, what wharf's path costs, the rate
// that allows on ncpu cores, and that rate over each reference's.
func ceilingLine(what string, ncpu int, wharf cpuCost, refs []measured) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CPU ceiling of the S3 %s through wharf on %d cores (medians): client %s + wharf %s + versitygw %s = %s CPU-s/GB, so at most %.0f MB/s with every core busy",
		what, ncpu, formatFigure(wharf.client), formatFigure(wharf.gateway), formatFigure(wharf.store), formatFigure(wharf.total()), wharf.maxRate(ncpu))
	var parts []string
	for _, r := range refs {
		if r.rate > 0 {
			parts = append(parts, fmt.Sprintf("%.2f× %s's %.1f MB/s", wharf.maxRate(ncpu)/r.rate, r.name, r.rate))
		}
	}
	if len(parts) > 0 {
		b.WriteString(": at most " + strings.Join(parts, ", "))
	}
	return b.String()
}

// printCeilings prints ceilingLine for the transfers just measured: rows
// maps each reference's name to its row (refs of measureTransfers).
func (r *s3Runner) printCeilings(what string, rows map[string]string) {
	var wharf cpuCost
	var refs []measured
	for _, name := range []string{s3DirectName, s3OneGetName, s3RcloneName} {
		row, ok := rows[name]
		if !ok {
			continue
		}
		res := r.result[row] // wharf's figures are in every row
		wharf = cpuCost{client: summarize(res.client[s3WharfName]).median, gateway: summarize(res.cpu[s3WharfName]).median,
			store: summarize(r.storeCPU[what][s3WharfName]).median}
		refs = append(refs, measured{name: name, rate: summarize(res.values[name]).median})
	}
	if wharf.total() > 0 {
		fmt.Fprintln(r.b.progress, ceilingLine(what, runtime.NumCPU(), wharf, refs))
	}
}
