import { Module } from '@nestjs/common';
import { ImagesModule } from '../images/images.module';
import { ExportReader } from './export-reader';
import { ExportsController } from './exports.controller';
import { ExportsService } from './exports.service';

/** `GET /api/segmentation/export` (CSV, COCO). Serving roles only; exports nothing. */
@Module({
  imports: [ImagesModule],
  controllers: [ExportsController],
  providers: [ExportReader, ExportsService],
})
export class ExportsModule {}
