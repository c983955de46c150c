"""Analysis: tools of ``apply_fn`` or ``loss_fn``, ``params`` and a batch, for any model.

- :mod:`~jaxdl.analysis.landscape` -- interpolation, 2-D surfaces, mode connectivity, filter-normalised
  sharpness;
- :mod:`~jaxdl.analysis.curvature` -- Hessian-vector products, spectra, traces, sharpness,
  reparametrisation;
- :mod:`~jaxdl.analysis.ntk` -- the empirical and infinite-width neural tangent kernels and their
  predictions;
- :mod:`~jaxdl.analysis.implicit` -- SGD's implicit regulariser (Smith et al. 2021);
- :mod:`~jaxdl.analysis.adversarial` -- FGSM and adversarial training (Goodfellow et al. 2015).

Nothing here imports a model family of :mod:`jaxdl.models` or a course tool.
"""
from jaxdl.analysis import adversarial, curvature, implicit, landscape, ntk

__all__ = ["adversarial", "curvature", "implicit", "landscape", "ntk"]
