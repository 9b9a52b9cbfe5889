"""Render the synthetic corpus: ``amdd-kit make-data`` (same arguments; see ``--help``)."""
import sys; from amdd_kit.cli import main  # noqa: E401,E702
sys.exit(main(["make-data", *sys.argv[1:]]))
