"""The plugin system: the registry the hooks fill, the hook specifications, the plugin
manager, parameters declared on plugin classes, and saved-model class resolution
(public face: :mod:`wbench.registry`)."""
