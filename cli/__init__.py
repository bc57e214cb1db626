"""The `tinybert` command line (click): `cli/main.py` is the group, one module per command.

Started by mpiexec, a process first splits the machine's cores between the processes on it
(`cli/parallel.py`), here, before anything imports NumPy: its OpenBLAS reads its thread count
once, when it loads. Without an MPI launcher this does nothing.
"""
import os

from cli.parallel import set_thread_defaults

set_thread_defaults(os.environ)
