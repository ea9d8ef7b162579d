"""The trainer's library: recipes and validated options (:mod:`~ipmix_train.config`), the
training loop and DDP (:mod:`~ipmix_train.engine`), models, losses (CE + JSD), metrics,
atomic checkpoints, a run's start-up checks and notes (:mod:`~ipmix_train.startup`),
evaluation on clean and corrupted sets (:mod:`~ipmix_train.evaluate`,
:mod:`~ipmix_train.corruptions`) and the robustness experiment. The command lines are
``train/imagenet.py``, ``train/evaluate.py`` and ``tools/robustness_experiment.py``.
"""
