"""A module's choices kept in its parameter node, so that they are saved with the scene.

Each module declares its parameters once (:class:`Parameter`: name, kind, default). Inside
Slicer the same declaration becomes a ``parameterNodeWrapper`` class, whose GUI connection binds
the ``.ui`` widgets that carry ``SlicerParameterName``; where ``parameterNodeWrapper`` is absent
(``slicer-core``, scripts) :class:`ParameterSet` reads and writes the same
``vtkMRMLScriptedModuleNode`` directly. Both store a value exactly as Slicer's serializers do
(numbers and text with ``str``, booleans as ``True``/``False``, paths as text, nodes as a node
reference with an empty parameter of the same name), so either side reads what the other wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

#: kinds of parameter and the Python type of their values
KINDS = {"str": str, "int": int, "float": float, "bool": bool, "path": str, "node": None}


@dataclass(frozen=True)
class Parameter:
    """One choice of a module. ``kind``: str, int, float, bool, path (a file or folder, "" for
    none) or node (a node reference; ``nodeClass`` names the class the widget offers)."""

    name: str
    kind: str
    default: object = None
    nodeClass: str = "vtkMRMLNode"
    help: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")


def _text(p: Parameter, value) -> str:
    if p.kind == "bool":
        return "True" if value else "False"
    if p.kind == "path":
        return "" if value in (None, "", ".") else str(value)
    return str(value)


def _value(p: Parameter, text: str):
    if p.kind == "bool":
        return text == "True"
    if p.kind == "int":
        return int(float(text))
    if p.kind == "float":
        return float(text)
    if p.kind == "path":
        return "" if text in ("", ".") else text  # parameterNodeWrapper writes Path("") as "."
    return text


def find_parameter_node(scene, module: str, create: bool = True):
    """The module's singleton ``vtkMRMLScriptedModuleNode`` in ``scene`` (the node Slicer's
    ``ScriptedLoadableModuleLogic.getParameterNode`` uses), created when absent and ``create``."""
    node = scene.GetSingletonNode(module, "vtkMRMLScriptedModuleNode")
    if node is None and create:
        node = scene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
        node.UnRegister(None)
        node.SetSingletonTag(module)
        node.SetModuleName(module)
        node.SetName(f"{module} parameters")
        node = scene.AddNode(node)
    return node


class ParameterSet:
    """Typed access to a module's parameters in a ``vtkMRMLScriptedModuleNode``:
    ``params.model = "cine"``; ``params.inputNode`` returns the referenced node or None. A
    parameter never set reads as its default."""

    def __init__(self, node, parameters):
        object.__setattr__(self, "parameterNode", node)
        object.__setattr__(self, "_spec", {p.name: p for p in parameters})

    def __getattr__(self, name):
        spec = self.__dict__["_spec"]
        if name not in spec:
            raise AttributeError(f"no parameter {name!r} (parameters: {', '.join(spec)})")
        p, node = spec[name], self.__dict__["parameterNode"]
        if p.kind == "node":
            return node.GetNodeReference(name)
        if not node.HasParameter(name):
            return p.default
        return _value(p, node.GetParameter(name))

    def __setattr__(self, name, value):
        spec = self._spec
        if name not in spec:
            raise AttributeError(f"no parameter {name!r} (parameters: {', '.join(spec)})")
        p, node = spec[name], self.parameterNode
        if p.kind == "node":
            node.SetParameter(name, "")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
            return
        if value is not None and p.kind in ("int", "float"):
            value = KINDS[p.kind](value)
        node.SetParameter(name, _text(p, value))

    def values(self) -> dict:
        """Every parameter's current value ({name: value}; nodes as nodes)."""
        return {name: getattr(self, name) for name in self._spec}

    def update(self, **values) -> None:
        for k, v in values.items():
            setattr(self, k, v)

    def setDefaults(self) -> None:
        """Write the default of every parameter not set yet."""
        for p in self._spec.values():
            if not self.parameterNode.HasParameter(p.name) and p.kind != "node":
                setattr(self, p.name, p.default)


def wrapper_class(class_name: str, parameters):
    """The ``parameterNodeWrapper`` class of ``parameters`` (inside Slicer), or None where
    ``slicer.parameterNodeWrapper`` is absent. Paths are ``pathlib.Path`` there (so that
    ``ctkPathLineEdit`` widgets bind to them) and nodes ``Optional`` of their class."""
    try:
        import slicer
        from slicer.parameterNodeWrapper import parameterNodeWrapper
    except ImportError:
        return None
    import pathlib
    import typing

    annotations, defaults = {}, {}
    for p in parameters:
        if p.kind == "node":
            classes = tuple(getattr(slicer, c) for c in p.nodeClass.split("|"))
            annotations[p.name] = typing.Optional[typing.Union[classes]] if len(classes) > 1 else typing.Optional[classes[0]]
            continue
        annotations[p.name] = pathlib.Path if p.kind == "path" else KINDS[p.kind]
        defaults[p.name] = pathlib.Path(p.default or "") if p.kind == "path" else p.default
    namespace = {"__annotations__": annotations, **defaults}
    return parameterNodeWrapper(type(class_name, (), namespace))


def open_parameters(scene, module: str, parameters, wrapper=None):
    """The module's parameters in ``scene``: an instance of ``wrapper`` (a class made by
    :func:`wrapper_class`) around the module's parameter node when given, else a
    :class:`ParameterSet`; defaults written for every parameter not set yet."""
    node = find_parameter_node(scene, module)
    plain = ParameterSet(node, parameters)
    plain.setDefaults()
    return wrapper(node) if wrapper is not None else plain
