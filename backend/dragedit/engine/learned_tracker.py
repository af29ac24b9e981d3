"""StableDrag's discriminative point tracker: a learned 1x1 convolution per handle and its confidence.

Each handle i gets a filter z_i (C weights, a 1x1 convolution), initialised with its template
f_i = F0(p0_i) and trained once on the original features so that its response over the window of
radius r2 around p0_i matches a Gaussian centred on p0_i. Tracking then maximises

    S = lambda x exp(-mean_c |F - f_i| / d_i) + (1 - lambda) x g(F, z_i)

over the square window around the current handle; the best score is the point's confidence.

Choices the paper leaves open (documented here, used by the StableDrag method):
- Scales. Both terms are made to lie in about [0, 1] and to equal 1 on a perfect match at the handle.
  The L1 term uses the channel MEAN of |F - f_i| divided by d_i, the mean of that distance over the
  training window on F0 (the paper's channel sum would make exp(-.) underflow to zero for 640
  channels, and an absolute scale would make the score depend on the model's feature magnitude): the
  term is 1 on the template and about exp(-1) at a typical neighbour, a range like the label's. The
  filter response is divided by |f_i|^2, so the untrained filter answers exactly 1 on the template,
  and training fits it to a Gaussian label of peak 1. On SD features, which are bilinear upsamplings
  of the latent grid, a linear filter's response is itself bilinear between latent pixels; the sharp
  L1 term is what pins the maximum to the exact feature pixel.
- Training. Full-batch gradient descent on the mean squared error, each point with step 1 / L_i where
  L_i is the Lipschitz constant of its loss gradient (from the largest eigenvalue of the window's
  Gram matrix): a step size that needs no tuning across models and feature scales, and is stable.
  The iterates are computed on the (2r+1)^2 coefficients of the window's span, where every gradient
  lies (the same iterates as on the C weights, at a fraction of the cost), and all points are
  trained together in one batched problem (einsum), not one by one.
- The Gaussian label's width sigma is a parameter (1 feature pixel by default).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .patches import patch_offsets, sample_patches, sample_points
from .tracking import candidate_mask


@dataclass
class PointFilters:
    """Per point: the trained 1x1-convolution weights (N x C), the response scale |f_i|^2 (N), the
    template f_i (N x C) and the L1 distance scale d_i (N)."""

    weights: torch.Tensor
    scale: torch.Tensor
    templates: torch.Tensor
    distance_scale: torch.Tensor

    def response(self, windows: torch.Tensor) -> torch.Tensor:
        """g(F, z_i) on windows N x C x k x k: the normalised 1x1-convolution output, N x k x k."""
        return torch.einsum("nchw,nc->nhw", windows, self.weights) / self.scale[:, None, None]


def gaussian_label(radius: int, sigma: float, device: torch.device) -> torch.Tensor:
    """A (2r+1) x (2r+1) Gaussian of peak 1 centred on the window's middle."""
    offsets = patch_offsets(radius, device)
    k = 2 * radius + 1
    return torch.exp(-(offsets**2).sum(dim=-1) / (2.0 * sigma**2)).view(k, k)


def template_distance(windows: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Channel-mean L1 distance of every window position to its template: N x k x k."""
    return (windows - templates[:, :, None, None]).abs().mean(dim=1)


def train_point_filters(features: torch.Tensor, handles: torch.Tensor, radius: int, iterations: int,
                        sigma: float = 1.0) -> PointFilters:
    """Train one filter per handle on the (detached) original features around it.

    features: 1 x C x H x W (the original F0); handles: N x 2 (x, y) feature pixels.
    """
    with torch.no_grad():
        features = features.float()
        templates = sample_points(features, handles)  # N x C
        windows = sample_patches(features, handles, radius)
        rows = windows.flatten(2).transpose(1, 2)  # N x K x C, K = (2r+1)^2
        distance_scale = template_distance(windows, templates).flatten(1).mean(dim=1).clamp_min(1e-6)
        scale = (templates**2).sum(dim=-1).clamp_min(1e-12)[:, None]  # response normalisation |f_i|^2
        label = gaussian_label(radius, sigma, features.device).flatten()
        # loss_i(z) = mean_k (R_k . z / s_i - y_k)^2. Its gradient (2 / K) R^T residual / s_i lies in the span of
        # the window's rows, so z = f_i + R^T c and descent runs on the K coefficients c. With the step 1 / L_i,
        # L_i = 2 lam_max(R R^T) / (K s_i^2), an update of z is exactly c -= s_i / lam_max x residual.
        gram = rows @ rows.transpose(1, 2)  # N x K x K
        step = scale / torch.linalg.eigvalsh(gram)[:, -1:].clamp_min(1e-12)
        template_response = torch.einsum("nkc,nc->nk", rows, templates) / scale
        coefficients = torch.zeros_like(template_response)
        for _ in range(iterations):
            residual = template_response + torch.einsum("nkj,nj->nk", gram, coefficients) / scale - label
            coefficients -= step * residual
        weights = templates + torch.einsum("nkc,nk->nc", rows, coefficients)
    return PointFilters(weights, scale[:, 0], templates, distance_scale)


def tracking_scores(features: torch.Tensor, filters: PointFilters, handles: torch.Tensor, radius: int,
                    template_weight: float = 0.3) -> torch.Tensor:
    """The score S over each handle's window, N x (2r+1)^2 (row-major, as patch_offsets)."""
    windows = sample_patches(features, handles, radius)
    distance = template_distance(windows, filters.templates) / filters.distance_scale[:, None, None]
    score = template_weight * torch.exp(-distance) + (1.0 - template_weight) * filters.response(windows)
    return score.flatten(1)


def track_points_discriminative(features: torch.Tensor, filters: PointFilters, handles: torch.Tensor, radius: int,
                                template_weight: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each handle to the argmax of S in its square window (inside the map).

    Returns the new handles (N x 2) and each point's confidence, the best score (N).
    """
    with torch.no_grad():
        score = tracking_scores(features, filters, handles, radius, template_weight)
        inside = candidate_mask(handles, handles, radius, "square", features.shape[-2:])  # square: targets unused
        best, idx = score.masked_fill(~inside, float("-inf")).max(dim=1)
        offsets = patch_offsets(radius, handles.device, handles.dtype)
        return handles + offsets[idx], best
