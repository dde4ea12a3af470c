"""A minimal stand-in for Slicer's `slicer.parameterNodeWrapper` (absent from slicer-core).

It stores fields as Slicer's does, so a scene saved by one reads in the other: MRML nodes as node references
(plus an empty parameter of the same name), bool as "True"/"False", str as is. Only these types are needed.
"""
from __future__ import annotations

import sys
import types
import typing

import slicer


def _serializer(type_):
    if isinstance(type_, type) and issubclass(type_, slicer.vtkMRMLNode):
        def write(node, name, value):
            node.SetParameter(name, "")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        return None, write, lambda node, name: node.GetNodeReference(name)
    if type_ is bool:
        return False, (lambda node, name, value: node.SetParameter(name, "True" if value else "False")), \
            (lambda node, name: node.GetParameter(name) == "True")
    if type_ is str:
        return "", (lambda node, name, value: node.SetParameter(name, str(value))), \
            (lambda node, name: node.GetParameter(name))
    raise TypeError(f"the parameterNodeWrapper stand-in does not serialize {type_}")


def parameterNodeWrapper(classtype):
    """Class decorator: typed properties over a vtkMRMLScriptedModuleNode, defaults written on wrapping."""
    fields = {}
    for name, type_ in typing.get_type_hints(classtype).items():
        default, write, read = _serializer(type_)
        fields[name] = (getattr(classtype, name, default), write, read)
        setattr(classtype, name, property(lambda self, n=name: fields[n][2](self.parameterNode, n),
                                          lambda self, value, n=name: fields[n][1](self.parameterNode, n, value)))

    def __init__(self, parameterNode):
        self.parameterNode = parameterNode
        for name, (default, write, _) in fields.items():
            if not parameterNode.HasParameter(name):
                write(parameterNode, name, default)

    classtype.__init__ = __init__
    classtype.allParameters = fields
    classtype.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(
        event, callback, priority)
    classtype.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    classtype.StartModify = lambda self: self.parameterNode.StartModify()
    classtype.EndModify = lambda self, wasModifying: self.parameterNode.EndModify(wasModifying)
    return classtype


def install() -> None:
    """Make `from slicer.parameterNodeWrapper import parameterNodeWrapper` work where slicer-core lacks it."""
    import importlib.util
    if "slicer.parameterNodeWrapper" not in sys.modules and importlib.util.find_spec("slicer.parameterNodeWrapper") is None:
        module = types.ModuleType("slicer.parameterNodeWrapper")
        module.parameterNodeWrapper = parameterNodeWrapper
        sys.modules["slicer.parameterNodeWrapper"] = module
        slicer.parameterNodeWrapper = module
