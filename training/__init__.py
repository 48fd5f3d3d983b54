"""Fine-tuning and evaluation of the FER Workbench models on FER2013, FERPlus, CK+ and image folders.

Command-line entry points: ``python training/finetune.py`` and ``python training/evaluate.py``.
"""
