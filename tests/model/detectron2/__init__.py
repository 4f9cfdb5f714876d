"""detectron2 goldens: data and the stdlib + numpy helpers in weights.py (no detectron2 import)."""
