"""Camera vision: frame sources, the decode path and the presence debounce. No pipeline imports."""
