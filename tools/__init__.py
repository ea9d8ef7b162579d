"""Thin command-line programs (build_fractals, write_beton, make_demo_dataset, demo,
check_pins).
Each parses arguments and calls library code; logic that a test needs lives in a package."""
