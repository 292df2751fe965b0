"""Model roles and profiles, weight resolution and download, the model cache, pipeline assembly."""
