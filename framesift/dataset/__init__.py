"""A dataset folder's format, apart from how it is written: its records read back (`records`), and its export to
COCO, YOLO, Pascal VOC (`export`) or Label Studio tasks (`labelstudio_export`, with the task format the live
Label Studio target shares, `labelstudio_tasks`)."""
