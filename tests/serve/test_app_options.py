"""The Serve options `maskrt serve` flags turn into, checked by Serve's own config validation
(Deployment.options builds its pydantic DeploymentConfig; nothing is started)."""

from __future__ import annotations

from ray import serve

from maskrt.serve.app import ServeOptions, build_app, model_deployment_options
from maskrt.serve.model import ModelReplica, ModelSpec


def deployment_config(options: dict):
    return serve.deployment(ModelReplica).options(**options)._deployment_config


def test_fixed_replicas_and_bounded_queue():
    o = ServeOptions(model=ModelSpec("m.safetensors"), replicas=3, max_batch=4)
    config = deployment_config(model_deployment_options(o))
    assert config.num_replicas == 3 and config.autoscaling_config is None
    assert config.max_ongoing_requests == 8  # a batch running, the next one filling
    assert config.max_queued_requests == 24  # 2 x max_batch x replicas waiting at the gateway
    assert config.health_check_period_s == 2.0 and config.max_constructor_retry_count == 3


def test_autoscaling_between_replicas_and_max_replicas():
    o = ServeOptions(model=ModelSpec("m.safetensors"), replicas=2, max_replicas=6, max_batch=2, max_queued=5)
    config = deployment_config(model_deployment_options(o))
    scaling = config.autoscaling_config
    assert (scaling.min_replicas, scaling.initial_replicas, scaling.max_replicas) == (2, 2, 6)
    assert scaling.target_ongoing_requests == 2 and config.max_queued_requests == 5


def test_application_binds_gateway_to_model():
    app = build_app(ServeOptions(model=ModelSpec("m.safetensors"), replicas=1, max_batch=2))
    gateway_options = app._bound_deployment.init_args[1]
    assert gateway_options.model_deployment == "Segmenter" and gateway_options.max_batch == 2
    assert gateway_options.score_threshold == 0.5 and gateway_options.streams == ()


def test_page_names_the_model_not_its_path_on_the_server():
    """Issue 22: the page showed every visitor the model's absolute path on the server."""
    from maskrt.serve.app import gateway_options
    from maskrt.serve.page import render_page

    o = gateway_options(ServeOptions(model=ModelSpec("/srv/secret/models/r50.maskrt"), upload_timeout_s=7,
                                     max_client_requests=3))
    assert o.model_label == "r50.maskrt" and (o.upload_timeout_s, o.max_client_requests) == (7, 3)
    page = render_page([], o.model_label, o.replicas_label)
    assert "r50.maskrt" in page and "/srv/secret" not in page
    assert gateway_options(ServeOptions(model=ModelSpec("torchvision:maskrcnn_resnet50_fpn"))).model_label == \
        "torchvision:maskrcnn_resnet50_fpn"
