"""``python -m fr_bench ...`` (and ``torchrun --nproc_per_node N -m fr_bench evaluate ...``) run the CLI."""

from fr_bench.cli import main

if __name__ == "__main__":
    main()
