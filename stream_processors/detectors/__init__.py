"""Pure detectors: per-run (loops, run budgets) and per-tenant fleet (spend windows, drift)."""
