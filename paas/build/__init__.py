"""The layered builder: Dockerfile text -> parse -> typed instructions -> plan -> execute with cache -> image.

parser.py (text -> nodes, BuildKit-conformant), shell.py (word expansion), instructions.py (typed commands),
context.py (build context, .dockerignore, COPY sources and their content hash).
"""
