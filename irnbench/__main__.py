"""``python -m irnbench`` (used by ``torchrun -m irnbench``)."""

from irnbench.cli import main

main()
