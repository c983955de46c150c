"""jaxdl: a JAX functional research codebase for the science of deep learning."""
