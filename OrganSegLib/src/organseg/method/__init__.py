"""The method, per organ: body mask, pre-processing, the network and its runtimes, coarse-to-fine inference,
post-processing, the classical lung labeller, model packages and the memory a run needs."""
