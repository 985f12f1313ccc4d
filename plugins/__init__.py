"""Built-in method plugins of irnbench (import name ``irnbench_plugins``).

Each module registers its methods through the ``irnbench`` entry-point group, exactly as a
third-party plugin does.
"""
