BEGIN TRANSACTION;
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	user VARCHAR(64) NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	entity VARCHAR(32) NOT NULL, 
	entity_id INTEGER, 
	field VARCHAR(64), 
	old_value TEXT, 
	new_value TEXT, 
	PRIMARY KEY (id)
);
INSERT INTO "audit_log" VALUES(1,'2026-12-04 18:30:28.866145','importer','import','image',1,'source_path',NULL,'/data/PAT1/img0.png');
INSERT INTO "audit_log" VALUES(2,'2026-12-04 18:30:28.867896','importer','set_label','image',1,'label[import]',NULL,'benign');
INSERT INTO "audit_log" VALUES(3,'2026-12-04 18:30:29.687356','importer','import','image',2,'source_path',NULL,'/data/PAT1/img1.png');
INSERT INTO "audit_log" VALUES(4,'2026-12-04 18:30:29.687734','importer','set_label','image',2,'label[import]',NULL,'malignant');
INSERT INTO "audit_log" VALUES(5,'2026-12-04 18:30:30.150310','importer','import','image',3,'source_path',NULL,'/data/PAT1/img2.png');
INSERT INTO "audit_log" VALUES(6,'2026-12-04 18:30:30.283432','importer','import','image',4,'source_path',NULL,'/data/PAT2/img3.png');
INSERT INTO "audit_log" VALUES(7,'2026-12-04 18:30:30.284030','importer','set_label','image',4,'label[import]',NULL,'normal');
INSERT INTO "audit_log" VALUES(8,'2026-12-04 18:30:30.286836','dr_a','set_label','image',1,'label[reader]',NULL,'malignant');
INSERT INTO "audit_log" VALUES(9,'2026-12-04 18:30:30.286838','dr_a','set_label','image',1,'birads[reader]',NULL,'4c');
INSERT INTO "audit_log" VALUES(10,'2026-12-04 18:30:30.288244','dr_a','set_label','image',1,'birads[reader]','4c','5');
INSERT INTO "audit_log" VALUES(11,'2026-12-04 18:30:30.288246','dr_a','set_label','image',1,'note[reader]',NULL,'spiculated');
INSERT INTO "audit_log" VALUES(12,'2026-12-04 18:30:30.289833','dr_b','set_label','image',2,'label[biopsy]',NULL,'benign');
INSERT INTO "audit_log" VALUES(13,'2026-12-04 18:30:30.289836','dr_b','set_label','image',2,'biopsy_confirmed[biopsy]',NULL,'True');
INSERT INTO "audit_log" VALUES(14,'2026-12-04 18:30:30.291557','dr_a','set_label','patient',1,'label[reader]',NULL,'malignant');
INSERT INTO "audit_log" VALUES(15,'2026-12-04 18:30:30.293064','dr_b','set_label','image',3,'label[reader]',NULL,'benign');
INSERT INTO "audit_log" VALUES(16,'2026-12-04 18:30:30.293746','dr_b','clear_label','image',3,'label[reader]','benign',NULL);
INSERT INTO "audit_log" VALUES(17,'2026-12-04 18:30:30.296489','dr_a','review','patient',1,'reviewed','False','True');
INSERT INTO "audit_log" VALUES(18,'2026-12-04 18:30:30.298850','dr_a','add_roi','roi',1,'box',NULL,'[10, 20, 200, 180]');
INSERT INTO "audit_log" VALUES(19,'2026-12-04 18:30:30.300249','dr_a','update_roi','roi',1,'box','[10, 20, 200, 180]','[12, 22, 210, 190]');
INSERT INTO "audit_log" VALUES(20,'2026-12-04 18:30:30.301562','dr_b','add_roi','roi',2,'box',NULL,'[5, 5, 50, 50]');
INSERT INTO "audit_log" VALUES(21,'2026-12-04 18:30:30.301994','dr_b','delete_roi','roi',2,'deleted','False','True');
INSERT INTO "audit_log" VALUES(22,'2026-12-04 18:30:30.304345','dr_a','model_version','model',1,'sha256',NULL,'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
INSERT INTO "audit_log" VALUES(23,'2026-12-04 18:30:30.306100','dr_a','activate','model',NULL,'ensemble',NULL,'ens:1');
CREATE TABLE images (
	id INTEGER NOT NULL, 
	series_id INTEGER NOT NULL, 
	source_path TEXT NOT NULL, 
	content_hash VARCHAR(64) NOT NULL, 
	sop_uid VARCHAR(128), 
	file_size INTEGER NOT NULL, 
	frame_count INTEGER NOT NULL, 
	rows INTEGER NOT NULL, 
	columns INTEGER NOT NULL, 
	is_color BOOLEAN NOT NULL, 
	photometric VARCHAR(32), 
	frame_time_ms FLOAT, 
	spacing_row_mm FLOAT, 
	spacing_col_mm FLOAT, 
	regions JSON, 
	duplicate_of INTEGER, 
	imported_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_image_hash_path UNIQUE (content_hash, source_path), 
	FOREIGN KEY(series_id) REFERENCES series (id), 
	UNIQUE (sop_uid), 
	FOREIGN KEY(duplicate_of) REFERENCES images (id)
);
INSERT INTO "images" VALUES(1,1,'/data/PAT1/img0.png','0000000000000000000000000000000000000000000000000000000000000000','1.2.3.PAT1.1.0',1000,1,400,500,0,'MONOCHROME2',NULL,0.1,0.1,'[{"x0": 0, "y0": 0, "x1": 499, "y1": 399}]',NULL,'2026-12-04 18:30:28.346494');
INSERT INTO "images" VALUES(2,1,'/data/PAT1/img1.png','0000000000000000000000000000000000000000000000000000000000000001','1.2.3.PAT1.1.1',1001,1,400,500,0,'MONOCHROME2',NULL,0.1,0.1,'[{"x0": 0, "y0": 0, "x1": 499, "y1": 399}]',NULL,'2026-12-04 18:30:29.686834');
INSERT INTO "images" VALUES(3,1,'/data/PAT1/img2.png','0000000000000000000000000000000000000000000000000000000000000002','1.2.3.PAT1.1.2',1002,1,400,500,0,'MONOCHROME2',NULL,0.1,0.1,'[{"x0": 0, "y0": 0, "x1": 499, "y1": 399}]',NULL,'2026-12-04 18:30:30.149998');
INSERT INTO "images" VALUES(4,2,'/data/PAT2/img3.png','0000000000000000000000000000000000000000000000000000000000000003','1.2.3.PAT2.1.3',1003,1,400,500,0,'MONOCHROME2',NULL,0.1,0.1,'[{"x0": 0, "y0": 0, "x1": 499, "y1": 399}]',NULL,'2026-12-04 18:30:30.282453');
CREATE TABLE labels (
	id INTEGER NOT NULL, 
	image_id INTEGER, 
	patient_id INTEGER, 
	source VARCHAR(16) NOT NULL, 
	label VARCHAR(16) NOT NULL, 
	birads VARCHAR(4), 
	biopsy_confirmed BOOLEAN NOT NULL, 
	note TEXT, 
	user VARCHAR(64) NOT NULL, 
	updated DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_label_target_source UNIQUE (image_id, patient_id, source), 
	FOREIGN KEY(image_id) REFERENCES images (id), 
	FOREIGN KEY(patient_id) REFERENCES patients (id)
);
INSERT INTO "labels" VALUES(1,1,NULL,'import','benign',NULL,0,NULL,'importer','2026-12-04 18:30:28.868342');
INSERT INTO "labels" VALUES(2,2,NULL,'import','malignant',NULL,0,NULL,'importer','2026-12-04 18:30:30.147852');
INSERT INTO "labels" VALUES(3,4,NULL,'import','normal',NULL,0,NULL,'importer','2026-12-04 18:30:30.284180');
INSERT INTO "labels" VALUES(4,1,NULL,'reader','malignant','5',0,'spiculated','dr_a','2026-12-04 18:30:30.287979');
INSERT INTO "labels" VALUES(5,2,NULL,'biopsy','benign',NULL,1,NULL,'dr_b','2026-12-04 18:30:30.290007');
INSERT INTO "labels" VALUES(6,NULL,1,'reader','malignant',NULL,0,NULL,'dr_a','2026-12-04 18:30:30.291649');
CREATE TABLE model_versions (
	id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	architecture VARCHAR(32) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	card JSON NOT NULL, 
	created DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_model_name_version UNIQUE (name, version)
);
INSERT INTO "model_versions" VALUES(1,'ens',1,'ensemble','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','{"name": "ens", "version": 1, "architecture": "ensemble", "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}','2026-12-04 18:30:30.303968');
CREATE TABLE patients (
	id INTEGER NOT NULL, 
	patient_key VARCHAR(128) NOT NULL, 
	name VARCHAR(256), 
	reviewed BOOLEAN NOT NULL, 
	reviewed_at DATETIME, 
	created DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (patient_key)
);
INSERT INTO "patients" VALUES(1,'PAT1','Name PAT1',1,'2026-12-04 18:30:30.296203','2026-12-04 18:30:27.590539');
INSERT INTO "patients" VALUES(2,'PAT2','Name PAT2',0,NULL,'2026-12-04 18:30:30.151166');
CREATE TABLE predictions (
	id INTEGER NOT NULL, 
	image_id INTEGER NOT NULL, 
	roi_id INTEGER, 
	frame INTEGER NOT NULL, 
	model_name VARCHAR(64) NOT NULL, 
	model_version INTEGER NOT NULL, 
	architecture VARCHAR(32) NOT NULL, 
	model_sha256 VARCHAR(64) NOT NULL, 
	image_hash VARCHAR(64) NOT NULL, 
	label VARCHAR(16) NOT NULL, 
	malignant_probability FLOAT NOT NULL, 
	probabilities JSON NOT NULL, 
	created DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(image_id) REFERENCES images (id), 
	FOREIGN KEY(roi_id) REFERENCES rois (id)
);
INSERT INTO "predictions" VALUES(1,1,NULL,0,'ens',1,'ensemble','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','0000000000000000000000000000000000000000000000000000000000000000','malignant',0.81,'{"benign": 0.19, "malignant": 0.81}','2026-12-04 18:30:30.305455');
INSERT INTO "predictions" VALUES(2,1,1,0,'ens',1,'ensemble','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','0000000000000000000000000000000000000000000000000000000000000000','malignant',0.9,'{"benign": 0.1, "malignant": 0.9}','2026-12-04 18:30:30.305458');
INSERT INTO "predictions" VALUES(3,4,NULL,0,'ens',1,'ensemble','aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','0000000000000000000000000000000000000000000000000000000000000003','benign',0.2,'{"benign": 0.8, "malignant": 0.2}','2026-12-04 18:30:30.305458');
CREATE TABLE rois (
	id INTEGER NOT NULL, 
	image_id INTEGER NOT NULL, 
	frame INTEGER NOT NULL, 
	x0 INTEGER NOT NULL, 
	y0 INTEGER NOT NULL, 
	x1 INTEGER NOT NULL, 
	y1 INTEGER NOT NULL, 
	user VARCHAR(64) NOT NULL, 
	created DATETIME NOT NULL, 
	deleted BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(image_id) REFERENCES images (id)
);
INSERT INTO "rois" VALUES(1,1,0,12,22,210,190,'dr_a','2026-12-04 18:30:30.298495',0);
INSERT INTO "rois" VALUES(2,2,0,5,5,50,50,'dr_b','2026-12-04 18:30:30.301338',1);
CREATE TABLE series (
	id INTEGER NOT NULL, 
	study_id INTEGER NOT NULL, 
	series_uid VARCHAR(128) NOT NULL, 
	description VARCHAR(256), 
	modality VARCHAR(16), 
	PRIMARY KEY (id), 
	FOREIGN KEY(study_id) REFERENCES studies (id), 
	UNIQUE (series_uid)
);
INSERT INTO "series" VALUES(1,1,'1.2.3.PAT1.1','B-mode','US');
INSERT INTO "series" VALUES(2,2,'1.2.3.PAT2.1','B-mode','US');
CREATE TABLE studies (
	id INTEGER NOT NULL, 
	patient_id INTEGER NOT NULL, 
	study_uid VARCHAR(128) NOT NULL, 
	study_date VARCHAR(16), 
	description VARCHAR(256), 
	PRIMARY KEY (id), 
	FOREIGN KEY(patient_id) REFERENCES patients (id), 
	UNIQUE (study_uid)
);
INSERT INTO "studies" VALUES(1,1,'1.2.3.PAT1','20240131','US breast');
INSERT INTO "studies" VALUES(2,2,'1.2.3.PAT2','20240131','US breast');
CREATE INDEX ix_studies_patient_id ON studies (patient_id);
CREATE INDEX ix_series_study_id ON series (study_id);
CREATE INDEX ix_images_content_hash ON images (content_hash);
CREATE INDEX ix_images_series_id ON images (series_id);
CREATE INDEX ix_labels_image_id ON labels (image_id);
CREATE INDEX ix_labels_patient_id ON labels (patient_id);
CREATE INDEX ix_rois_image_id ON rois (image_id);
CREATE INDEX ix_pred_image_model ON predictions (image_id, model_sha256);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
COMMIT;
