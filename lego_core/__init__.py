"""lego_core: content-based recommenders composed from Lego bricks (content, behaviour, predictor)."""
import os

# OpenMP threads that spin-wait for work slow small-op training 10-30x whenever other processes
# share the cores (two concurrent runs, a Streamlit server, a test runner). Must be set before
# torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
