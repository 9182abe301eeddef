"""The PySide6 + pyqtgraph review workstation.

Only this package imports Qt. Widgets wire user actions to the core (store, importer)
and to the AI layer, which is imported lazily inside background workers so that the
main window appears before torch is loaded.
"""
