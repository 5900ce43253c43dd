import pytest
import torch

from skphotoz.nn import AsinhScaling, Encoder, Standardize, build_backbone, resnet


@pytest.mark.parametrize(("depth", "features"), [(18, 512), (34, 512), (50, 2048)])
def test_resnet_output_size(depth, features):
    model = resnet(depth, in_channels=5).eval()
    assert model.out_features == features
    assert model(torch.randn(2, 5, 32, 32)).shape == (2, features)


def test_published_stem_keeps_resolution():
    standard = resnet(18, stem="standard")
    published = resnet(18, stem="published")
    assert published.conv1.stride == (1, 1) and isinstance(published.maxpool, torch.nn.Identity)
    assert standard.conv1.stride == (2, 2) and published.conv1.in_channels == 5
    x = torch.randn(1, 5, 64, 64)
    stem = lambda m, x: m.maxpool(m.relu(m.bn1(m.conv1(x))))  # noqa: E731
    assert stem(published.eval(), x).shape[-1] == 64
    assert stem(standard.eval(), x).shape[-1] == 16


def test_build_backbone_errors():
    assert build_backbone("mlp", (7,)).out_features == 256
    with pytest.raises(ValueError, match="backbone='mlp' takes 2-D input"):
        build_backbone("mlp", (5, 8, 8))
    with pytest.raises(ValueError, match="takes 4-D images"):
        build_backbone("resnet18", (7,))
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbone("vgg", (5, 8, 8))
    with pytest.raises(ValueError, match="depth must be one of \\[18, 34, 50\\]"):
        build_backbone("resnet101", (5, 8, 8))


def test_build_backbone_follows_the_input():
    # The first convolution takes the input's bands and the stem asked for.
    model = build_backbone("resnet18", (3, 16, 16), stem="published").eval()
    assert model.conv1.in_channels == 3 and model.conv1.stride == (1, 1)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 512)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 5, 16, 16))
    mlp = build_backbone("mlp", (7,)).eval()
    assert mlp.layers[0].in_features == 7 and mlp(torch.randn(4, 7)).shape == (4, 256)


def test_encoder_scales_before_the_body():
    softening = torch.tensor([0.5, 1.0, 2.0])
    body = torch.nn.Flatten()
    body.out_features = 3
    encoder = Encoder(AsinhScaling(softening), body)
    x = torch.tensor([[[[1.0]], [[-3.0]], [[0.2]]]])
    assert encoder.out_features == 3
    torch.testing.assert_close(encoder(x), torch.asinh(torch.tensor([[2.0, -3.0, 0.1]])))
    standardize = Standardize([1.0, -2.0], [2.0, 0.5])
    torch.testing.assert_close(standardize(torch.tensor([[3.0, -1.0]])), torch.tensor([[1.0, 2.0]]))
