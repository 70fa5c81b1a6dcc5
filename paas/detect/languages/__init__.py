"""One detector per language family: each reads an AppDir and returns a Found (or None when it does not apply)."""
