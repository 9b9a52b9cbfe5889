"""Preprocess a dataset into a clip store: ``amdd-kit preprocess`` (same arguments; ``--help``)."""
import sys; from amdd_kit.cli import main  # noqa: E401,E702
sys.exit(main(["preprocess", *sys.argv[1:]]))
