"""The toy world: synthetic scenes, the shipped toy model, the drag-quality cases and the demo."""
