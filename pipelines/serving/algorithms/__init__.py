"""Built-in algorithms' serving handlers: what a model package with no inference code of its
own is served with, loaded by file by the model server (:func:`invocations.load_handlers`)."""
