"""The Allegro families: ordinary, sequential (self-pretrained) and pretrained.

Everything a network needs is nequip's own machinery (nequip 0.19, nequip-allegro 0.8): a
Hydra config per training stage is written next to its data and run with ``nequip-train``
(the Lightning trainer, nequip's data module, loss and metrics); the best checkpoint
(validation per-atom energy RMSE) is packaged with ``nequip-package build`` into a
``.nequip.zip`` archive, and that file is the model of the registry. No network and no
training loop is written here. The modules, by job:

* `presets`    hyper-parameter presets (small, fast, paper, tiny) and the variants' backbone names;
* `config`     the nequip-train config of a stage and its model section;
* `runner`     stages run by one loop in subprocesses (``nequip-train``), packaging;
* `data`       a stage's structures with their neighbour lists, computed once;
* `inference`  packaged members from the registry, batch energies on the parent's
  neighbour list (`ParentGraph`, `EnergyModel`, `AllegroMember`);
* `training`   members and families: each variant a plan of stages;
* `corpus`     the pre-training corpus of binary Sc-M crystals and its corpus model.

`presets`, `config` and `inference` import neither torch nor nequip at module level (torch
loads when a member is loaded); `data`, `runner`, `training` and `corpus` import them.
"""
