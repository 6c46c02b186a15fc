"""The bundled labeler: CHGNet 0.3.0 (weights in its wheel, offline), a stand-in for DFT.

`CHGNetLabeler` is chgnet's `CHGNetCalculator` (same model, same weights, same energy) with
forces and stress taken in one backward pass:

    F_i = -dE/dr_i,    sigma = (1/V) dE/d(epsilon)

where epsilon is the strain applied to the cell (and, through it, to every position).
chgnet's own calculator runs two backward passes that also build the graph of the
gradient (`create_graph=True`, which training needs and a relaxation does not); here one
pass without it gives the same numbers (forces within 1e-5 eV/A, float32).

The crystal graph of every step is built by `crystal_graph` with array operations, equal
index for index to chgnet's converter (which builds one Python object per edge, a fifth of
a relaxation step's time). Together: 0.089 s instead of chgnet's 0.209 s per energy,
forces and stress of a 146-atom cell on one core (benchmarks/relaxation.py --gradients).
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from chgnet.graph.converter import TORCH_DTYPE, CrystalGraphConverter
from chgnet.graph.crystalgraph import CrystalGraph
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
        graph = crystal_graph(model.graph_converter, structure).to(self.device)
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


def graph_indices(
    n_atoms: int,
    center: np.ndarray,
    neighbor: np.ndarray,
    image: np.ndarray,
    distance: np.ndarray,
    bond_cutoff: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """chgnet's graph indices from a neighbour list (directed edges i -> j + image n).

    The undirected edge of i -> j (n) is shared with its reverse j -> i (-n) and numbered
    in order of first appearance. Every undirected edge of length <= `bond_cutoff` gives,
    at each of its two ends c, one angle row [c, edge, its directed edge from c, other
    edge, other directed edge] per other directed edge from c shorter than the cutoff,
    taken in chgnet's order (neighbours of c by first appearance, then edge order).
    Returns the atom graph (E, 2), directed -> undirected (E,), the bond graph (A, 5) and
    undirected -> directed (U,)."""
    e = len(center)
    if e == 0:
        raise ValueError("no neighbours within the cutoff: CHGNet's graph is undefined")
    shift = image.astype(np.int64) + 64  # |image| < 64 for any cutoff below 64 cells

    def key(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (((a * n_atoms + b) * 128 + s[:, 0]) * 128 + s[:, 1]) * 128 + s[:, 2]

    forward, reverse = key(center, neighbor, shift), key(neighbor, center, 128 - shift)
    order = np.argsort(forward, kind="stable")
    partner = order[np.minimum(np.searchsorted(forward[order], reverse), e - 1)]
    if not np.array_equal(forward[partner], reverse):
        raise RuntimeError("the neighbour list is not symmetric: an edge has no reverse")
    edge = np.arange(e)
    first = np.minimum(edge, partner)
    undirected2directed = np.flatnonzero(first == edge)
    directed2undirected = np.searchsorted(undirected2directed, first)
    # chgnet's order of the directed edges leaving an atom: by first appearance of the
    # neighbour among them, then by edge index
    _, pair = np.unique(center * n_atoms + neighbor, return_inverse=True)
    seen = np.full(pair.max() + 1, e)
    np.minimum.at(seen, pair, edge)
    short = np.flatnonzero(distance < bond_cutoff)
    leaving = short[np.lexsort((short, seen[pair[short]], center[short]))]
    count = np.bincount(center[leaving], minlength=n_atoms)
    start = np.cumsum(count) - count
    bonds = undirected2directed[distance[undirected2directed] <= bond_cutoff]
    anchor = np.stack([bonds, partner[bonds]], axis=1).ravel()  # both ends of every bond
    at = center[anchor]
    n = count[at]
    which = np.repeat(np.arange(len(anchor)), n)
    other = leaving[start[at][which] + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)]
    keep = other != anchor[which]
    which, other = which[keep], other[keep]
    bond_graph = np.stack([at[which], directed2undirected[anchor[which]], anchor[which],
                           directed2undirected[other], other], axis=1)  # fmt: skip
    atom_graph = np.stack([center, neighbor], axis=1)
    return atom_graph, directed2undirected, bond_graph, undirected2directed


def crystal_graph(converter: CrystalGraphConverter, structure: Structure) -> CrystalGraph:
    """The CrystalGraph that `converter(structure)` gives, built by `graph_indices`."""
    center, neighbor, image, distance = structure.get_neighbor_list(
        r=converter.atom_graph_cutoff, sites=structure.sites, numerical_tol=1e-8
    )
    n_atoms = len(structure)
    isolated = n_atoms - len(np.unique(center))
    if isolated and converter.on_isolated_atoms == "error":
        raise ValueError(
            f"{isolated} isolated atom(s) within {converter.atom_graph_cutoff} A: "
            "CHGNet's graph is undefined"
        )
    atom_graph, directed2undirected, bond_graph, undirected2directed = graph_indices(
        n_atoms, center, neighbor, image, distance, converter.bond_graph_cutoff
    )
    return CrystalGraph(
        atomic_number=torch.tensor(structure.atomic_numbers, dtype=torch.int32),
        atom_frac_coord=torch.tensor(structure.frac_coords, dtype=TORCH_DTYPE, requires_grad=True),
        atom_graph=torch.tensor(atom_graph, dtype=torch.int32),
        neighbor_image=torch.tensor(image, dtype=TORCH_DTYPE),
        directed2undirected=torch.tensor(directed2undirected, dtype=torch.int32),
        undirected2directed=torch.tensor(undirected2directed, dtype=torch.int32),
        bond_graph=torch.tensor(bond_graph, dtype=torch.int32),
        lattice=torch.tensor(structure.lattice.matrix, dtype=TORCH_DTYPE, requires_grad=True),
        composition=structure.composition.formula,
        atom_graph_cutoff=converter.atom_graph_cutoff,
        bond_graph_cutoff=converter.bond_graph_cutoff,
    )
