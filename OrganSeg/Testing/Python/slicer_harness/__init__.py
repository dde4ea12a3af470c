"""Test harness that runs the OrganSeg module's widget without the Slicer application.

slicer-core supplies Slicer's real MRML, logics and `slicer.util`; this harness supplies only what the
application adds: a PythonQt-flavoured `qt` module over PyQt5 (`pythonqt`), stand-ins for the ctk and qMRML
widgets the panel uses (`widgets`), the application object, main window and module base classes
(`application`), and `slicer.parameterNodeWrapper` where slicer-core lacks it (`parameter_node_wrapper`).
"""
