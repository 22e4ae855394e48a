"""Issue 29 item 17: the segmentation displays: iou_table aligned for long class names, the codes'
legend below the pictures (not over the bottom row), CamVid's 32 classes in 32 colours told apart."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import torch

from quickfit.vision import Normalize, SegmentationInterpretation
from quickfit.vision.segmentation.display import mask_colours, show_masks

matplotlib.use("Agg")

CAMVID_TINY = ("Animal Archway Bicyclist Bridge Building Car CartLuggagePram Child Column_Pole Fence LaneMkgsDriv "
               "LaneMkgsNonDriv Misc_Text MotorcycleScooter OtherMoving ParkingBlock Pedestrian Road RoadShoulder "
               "Sidewalk SignSymbol Sky SUVPickupTruck TrafficCone TrafficLight Train Tree Truck_Bus Tunnel "
               "VegetationMisc Void Wall").split()  # fmt: skip


def test_iou_table_columns_align_for_long_class_names():
    codes = ["Sky", "CartLuggagePram", "MotorcycleScooter", "Void"]
    learn = SimpleNamespace(dls=SimpleNamespace(codes=codes, void_code=3))
    counts = torch.tensor([[[5.0, 3, 2, 0], [6, 4, 3, 0], [7, 5, 2, 1]]])  # one image: inter, pred, actual
    table = SegmentationInterpretation(learn, [], [], [], counts).iou_table().splitlines()
    assert len({len(line) for line in table[:-1]}) == 1, table  # header and every class row: one width
    assert all(line[len("MotorcycleScooter")] == " " for line in table[1:-1])  # names never run into the IoU


def test_camvid_classes_get_colours_told_apart():
    c = mask_colours(len(CAMVID_TINY))
    w = np.sqrt([2.0, 4.0, 3.0])
    dist = np.sqrt((((c[:, None] - c[None]) * w) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 0.35  # tab20 repeated darker gave pairs 0.1 apart
    assert dist[CAMVID_TINY.index("Building"), CAMVID_TINY.index("TrafficLight")] > 0.5
    assert np.allclose(mask_colours(4), matplotlib.colormaps["tab10"].colors[:4])  # few classes: the usual ones


def test_the_legend_of_many_codes_stays_below_the_pictures():
    dls = SimpleNamespace(codes=CAMVID_TINY, void_code=30, normalize=Normalize([0.5] * 3, [0.25] * 3))
    masks = torch.arange(32).repeat_interleave(24).view(6, 8, 16) % 32  # every class present: 6 rows of legend
    fig = show_masks(dls, torch.zeros(6, 3, 8, 16), masks)
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    lowest = min(ax.get_window_extent().y0 for ax in fig.axes if ax.images)
    assert legend.y1 <= lowest + 1  # the bottom row's pictures are not covered
