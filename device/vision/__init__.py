"""Camera vision: the decode path (cascade.py, symbols.py) and the presence debounce (presence.py).

Pure image work, no hardware: the frames come from device/sources/camera/. No pipeline imports.
"""
