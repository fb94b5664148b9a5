"""A local OVHcloud API simulator for BYOI: both API generations, real signatures, faults."""

from .auth import DEMO_CREDENTIALS
from .server import Simulator, serve

__all__ = ["DEMO_CREDENTIALS", "Simulator", "serve"]
