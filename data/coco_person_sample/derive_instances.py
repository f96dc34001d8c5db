"""Write ``annotations/instances_sample.json``: the sample's images and annotations with COCO's 80
detection categories declared, as in COCO's own ``instances_val2017.json``.

The copied ``test_coco.json`` (a keypoints file) declares only ``person``. An 80-class COCO detector
evaluated on it would predict labels that have no category id; declaring all 80 categories keeps the
sample interchangeable with real COCO (same classes, same label -> category-id mapping). Only the
``categories`` list changes; ``person`` keeps its original entry.

    python data/coco_person_sample/derive_instances.py
"""
import json
import os.path as osp

# (supercategory, names) in COCO order; category ids skip 12, 26, 29, 30, 45, 66, 68, 69, 71, 83.
SUPERCATEGORIES = [
    ('person', ['person']),
    ('vehicle', ['bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat']),
    ('outdoor', ['traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench']),
    ('animal', ['bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
                'giraffe']),
    ('accessory', ['backpack', 'umbrella', 'handbag', 'tie', 'suitcase']),
    ('sports', ['frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat',
                'baseball glove', 'skateboard', 'surfboard', 'tennis racket']),
    ('kitchen', ['bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl']),
    ('food', ['banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
              'donut', 'cake']),
    ('furniture', ['chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet']),
    ('electronic', ['tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone']),
    ('appliance', ['microwave', 'oven', 'toaster', 'sink', 'refrigerator']),
    ('indoor', ['book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush']),
]
MISSING_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def main() -> None:
    root = osp.dirname(osp.abspath(__file__))
    with open(osp.join(root, 'annotations', 'test_coco.json')) as f:
        data = json.load(f)
    (person,) = data['categories']
    ids = [i for i in range(1, 91) if i not in MISSING_IDS]
    names = [(sc, n) for sc, group in SUPERCATEGORIES for n in group]
    assert len(ids) == len(names) == 80
    categories = []
    for cat_id, (sc, name) in zip(ids, names):
        categories.append(person if name == 'person' else
                          dict(supercategory=sc, id=cat_id, name=name))
    assert categories[0]['id'] == 1 and categories[0]['name'] == 'person'
    data['categories'] = categories
    with open(osp.join(root, 'annotations', 'instances_sample.json'), 'w') as f:
        json.dump(data, f)


if __name__ == '__main__':
    main()
