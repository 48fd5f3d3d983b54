"""Files linked into every architecture folder: the shared base (`fer_base`) and blocks (`fer_layers`)."""
