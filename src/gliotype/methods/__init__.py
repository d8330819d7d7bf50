"""Methods and baselines, one module each, behind one registry."""

from gliotype.methods.base import FitContext, Method, MethodConfig, Prepared
from gliotype.methods.registry import METHODS, MethodSpec, create_method, get_spec, list_methods, register_method

__all__ = ["FitContext", "Method", "MethodConfig", "Prepared", "METHODS", "MethodSpec", "create_method", "get_spec",
           "list_methods", "register_method"]
