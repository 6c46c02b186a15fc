"""The bundled labeler: CHGNet 0.3.0 (weights in its wheel, offline), a stand-in for DFT.

`CHGNetLabeler` is chgnet's `CHGNetCalculator` (same model, same weights, same energy) with
forces and stress taken in one backward pass:

    F_i = -dE/dr_i,    sigma = (1/V) dE/d(epsilon)

where epsilon is the strain applied to the cell (and, through it, to every position).
chgnet's own calculator runs two backward passes that also build the graph of the
gradient (`create_graph=True`, which training needs and a relaxation does not); here one
pass without it gives the same numbers (forces within 1e-5 eV/A, float32) in 0.13 s
instead of 0.24 s per 146-atom step on one core (benchmarks/relaxation.py).
"""

from __future__ import annotations

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from chgnet.model.dynamics import CHGNetCalculator
from chgnet.model.model import BatchedGraph
from pymatgen.core import Structure

GPA_PER_EV_A3 = 160.21766208  # chgnet's stress unit conversion, eV/A^3 -> GPa


class CHGNetLabeler(CHGNetCalculator):
    """CHGNet energy, forces and stress of one structure, gradients in one pass."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        """E (eV), F (eV/A) and the Voigt stress (eV/A^3, ASE's sign) of `atoms`."""
        Calculator.calculate(self, atoms, properties, system_changes)
        model = self.model
        model.eval()
        # the same Structure as pymatgen's AseAtomsAdaptor gives, without its warning about
        # constraints (FixSymmetry of `qcapprox references`), which CHGNet never reads
        atoms = self.atoms
        structure = Structure(atoms.cell[:], atoms.numbers, atoms.positions,
                              coords_are_cartesian=True)  # fmt: skip
        graph = model.graph_converter(structure).to(self.device)
        batch = BatchedGraph.from_graphs(
            [graph],
            bond_basis_expansion=model.bond_basis_expansion,
            angle_basis_expansion=model.angle_basis_expansion,
            compute_stress=True,
        )
        energy = model._compute(batch)["e"]
        d_positions, d_strain = torch.autograd.grad(
            energy.sum(), [batch.atom_positions[0], batch.strains[0]]
        )
        # an intensive model predicts eV/atom: scale the energy and its gradients by N
        n = len(structure) if model.is_intensive else 1
        composition = 0 if model.composition_model is None else model.composition_model([graph])
        stress_gpa = n * d_strain / batch.volumes[0] * GPA_PER_EV_A3
        self.results = {
            "energy": float((energy + composition).detach()[0]) * n,
            "forces": (-n * d_positions).detach().cpu().numpy().astype(float),
            "stress": full_3x3_to_voigt_6_stress(
                stress_gpa.detach().cpu().numpy().astype(float) * self.stress_weight
            ),
        }
        self.results["free_energy"] = self.results["energy"]
