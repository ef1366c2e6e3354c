"""Container runtime profiles: the Python and libraries of each SageMaker image, locally.

A job that passes locally must pass on SageMaker, so the local executor runs each job
with the interpreter and exact package pins of the image its request names, in an
environment built by uv on first use and cached (see ``environments``).
"""
