"""DICOM networking (no Qt): node settings, DIMSE (C-ECHO/FIND/GET/MOVE/STORE through
pynetdicom), a storage SCP, and DICOMweb (QIDO/WADO/STOW through dicomweb-client).

Every peer failure is a :class:`~busviewer.dicomnet.errors.PeerError` whose message names
the peer (node name, AE title, host:port or URL) and the reason.
"""
