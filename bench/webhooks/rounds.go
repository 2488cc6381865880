package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// runRounds measures each target's ceiling in rounds of interleaved max
// steps: every server runs at once (idle but for its own steps), and each
// round runs the echo steps and then each gateway's, so a gateway is
// compared with an echo measured seconds before it. On a shared machine
// the echo ceiling itself drifts by 10–30 % within minutes, which a single
// echo step at the start of a run folds into the share; the median of the
// rounds' shares does not. A target's ceiling in a round is its best step
// over the concurrency levels cfg.roundConns: echo answers at once and
// peaks at fewer connections than the gateway, whose every ack waits for a
// group commit (a webhook sender at a given rate has rate × latency
// deliveries in flight, so a slower ack means more of them, not fewer
// deliveries). With binB (-compare) the other version's gateways run in
// every round too, right after this version's, their order swapped every
// round.
func runRounds(cfg config, bin, binB, self, tmp string) error {
	type target struct {
		name, kind string
		c          *child
		gen        *generator
		shares     []float64
		rates      []float64
		cpu        []float64 // gateway CPU µs per delivery in the step
	}
	var (
		ts    []*target
		stops []func()
	)
	add := func(name, kind, bin, dir string, env []string) error {
		c, stop, err := startTarget(cfg, kind, bin, self, tmp, dir, env)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		stops = append(stops, stop)
		gen, closeIdle := newGenerator(cfg, c)
		stops = append(stops, closeIdle)
		gen.closedLoop(32, time.Second) // warm up
		ts = append(ts, &target{name: name, kind: kind, c: c, gen: gen})
		return nil
	}
	defer func() {
		for _, stop := range slices.Backward(stops) {
			stop()
		}
	}()
	if err := add("echo", "echo", "", "rounds-echo", nil); err != nil {
		return err
	}
	for _, db := range cfg.dbs {
		if err := add(db, db, bin, "rounds-"+db, nil); err != nil {
			return err
		}
		if binB != "" {
			if err := add(db+"-B", db, binB, "rounds-"+db+"-b", cfg.envB); err != nil {
				return err
			}
		}
	}
	fmt.Printf("# %d rounds of interleaved max steps, c=%v, %s each; a target's ceiling in a round is its best c (*)",
		cfg.rounds, cfg.roundConns, cfg.step)
	if binB != "" {
		fmt.Printf("; <db>-B is the gateway built from %s", cfg.compare)
		if len(cfg.envB) > 0 {
			fmt.Printf(" with %s", strings.Join(cfg.envB, " "))
		}
	}
	fmt.Printf("\n%-6s %-11s %6s %12s %10s %9s %14s\n", "round", "target", "c", "accepted/s", "p50", "of echo", "CPU µs/deliv.")
	for r := range cfg.rounds {
		order := slices.Clone(ts[1:])
		if binB != "" && r%2 == 1 {
			// Swap each A/B pair so neither version always runs first.
			for i := 0; i+1 < len(order); i += 2 {
				order[i], order[i+1] = order[i+1], order[i]
			}
		}
		var echo float64
		for _, t := range append([]*target{ts[0]}, order...) {
			steps := make([]roundStep, len(cfg.roundConns))
			for i, conns := range cfg.roundConns {
				steps[i] = runRoundStep(cfg, t.c, t.gen, t.kind, conns)
			}
			best := slices.MaxFunc(steps, func(a, b roundStep) int { return cmp.Compare(a.rate, b.rate) })
			if t.kind == "echo" {
				echo = best.rate
			} else {
				t.shares = append(t.shares, safeDiv(best.rate, echo))
				t.rates, t.cpu = append(t.rates, best.rate), append(t.cpu, best.cpu)
			}
			for _, st := range steps {
				mark := " "
				if st == best && len(steps) > 1 {
					mark = "*"
				}
				line := fmt.Sprintf("%-6d %-11s %5d%s %12.0f %10s", r+1, t.name, st.conns, mark, st.rate, st.p50.Round(10*time.Microsecond))
				if t.kind == "echo" {
					fmt.Println(line)
					continue
				}
				fmt.Printf("%s %8.0f %% %14.0f\n", line, 100*safeDiv(st.rate, echo), st.cpu)
			}
		}
	}
	fmt.Println()
	for _, t := range ts[1:] {
		fmt.Printf("%-11s share of echo: median %.0f %% (rounds: %s); accepted/s median %.0f; CPU µs/delivery median %.0f\n",
			t.name, 100*median(t.shares), percents(t.shares), median(t.rates), median(t.cpu))
	}
	fmt.Println()
	return nil
}

// roundStep is one closed-loop step of a round.
type roundStep struct {
	conns int
	rate  float64
	p50   time.Duration
	// cpu is the gateway's CPU µs per stored delivery in the step, its
	// processing drain included (0 for echo).
	cpu float64
}

// runRoundStep runs a closed-loop step of conns connections against a
// target of the rounds.
func runRoundStep(cfg config, c *child, gen *generator, kind string, conns int) roundStep {
	cpu0 := c.cpuTime()
	stored0, _ := deliveryCounts(c.url)
	res := gen.closedLoop(conns, cfg.step)
	st := roundStep{conns: conns, rate: float64(res.ok) / res.dur.Seconds(), p50: res.pct(0.5)}
	if kind == "echo" {
		return st
	}
	drainBacklog(c.url) // the step's processing counts in its CPU
	stored, _ := deliveryCounts(c.url)
	st.cpu = safeDiv(float64((c.cpuTime() - cpu0).Microseconds()), float64(stored-stored0))
	return st
}

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func percents(xs []float64) string {
	ps := make([]string, len(xs))
	for i, x := range xs {
		ps[i] = fmt.Sprintf("%.0f %%", 100*x)
	}
	return strings.Join(ps, ", ")
}
