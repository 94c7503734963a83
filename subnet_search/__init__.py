"""Strong lottery tickets: random subset-sum, constructions (Malach, Pensia, Orseau), certified approximation
error, and searching for subnetworks (edge-popup, greedy forward selection, planted tickets)."""

from prunebound.subnet_search.certify import ApproximationError, approximation_error
from prunebound.subnet_search.construct import (
    Ticket,
    construct_ticket,
    malach_ticket,
    measured_width,
    orseau_ticket,
    pensia_ticket,
    pensia_work,
    required_width,
    ticket_error,
)
from prunebound.subnet_search.planted import (
    PlantedResult,
    PlantedTask,
    mask_overlap,
    plant_ticket,
    planted_benchmark,
)
from prunebound.subnet_search.search import (
    EdgePopupResult,
    GreedySelectionResult,
    edge_popup,
    greedy_forward_selection,
    random_mask,
)
from prunebound.subnet_search.subset_sum import (
    LuekerResult,
    SubsetSumResult,
    lueker_experiment,
    subset_sum_brute_force,
    subset_sum_exact,
    subset_sum_exact_batched,
    subset_sum_exact_many,
    subset_sum_greedy,
    subset_sum_mip,
)

__all__ = [
    "ApproximationError", "approximation_error",
    "Ticket", "construct_ticket", "pensia_ticket", "malach_ticket", "orseau_ticket", "required_width",
    "measured_width", "pensia_work", "ticket_error",
    "PlantedTask", "PlantedResult", "plant_ticket", "planted_benchmark", "mask_overlap",
    "EdgePopupResult", "GreedySelectionResult", "edge_popup", "greedy_forward_selection", "random_mask",
    "SubsetSumResult", "LuekerResult", "subset_sum_exact", "subset_sum_exact_many", "subset_sum_exact_batched",
    "subset_sum_brute_force",
    "subset_sum_mip", "subset_sum_greedy", "lueker_experiment",
]
